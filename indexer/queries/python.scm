; Tags for Python (aider repomap conventions + our import / parent / context captures).

(class_definition name: (identifier) @name.definition.class) @definition.class
(function_definition name: (identifier) @name.definition.function) @definition.function

; Class-level annotated or assigned attributes are fields.
(class_definition body: (block
  (assignment left: (identifier) @name.definition.field) @definition.field))
; Attributes set in __init__ are fields too.
(function_definition name: (identifier) @_init (#eq? @_init "__init__")
  body: (block (assignment left: (attribute object: (identifier) @_self
                                            attribute: (identifier) @name.definition.field)
                           (#eq? @_self "self")) @definition.field))
; Module-level variables and constants.
(module (assignment left: (identifier) @name.definition.variable) @definition.variable)

(import_statement name: (dotted_name) @import.module) @import
(import_statement name: (aliased_import name: (dotted_name) @import.module
                                        alias: (identifier) @import.alias)) @import
(import_from_statement module_name: (_) @import.module
                       name: (dotted_name) @import.name) @import
(import_from_statement module_name: (_) @import.module
                       name: (aliased_import name: (dotted_name) @import.name
                                             alias: (identifier) @import.alias)) @import
(import_from_statement module_name: (_) @import.module (wildcard_import) @import.name) @import

(class_definition name: (identifier) @parent.child
  superclasses: (argument_list [(identifier) (attribute)] @parent.name))

; == references and context ==

(call function: [(identifier) @name.reference.call
                 (attribute attribute: (identifier) @name.reference.call)])
(attribute attribute: (identifier) @name.reference.attribute)
(type (identifier) @name.reference.type)
(generic_type (identifier) @name.reference.type)

(identifier) @context.identifier
(type (identifier) @context.type)
(generic_type (identifier) @context.type)
(string) @context.string
(class_definition body: (block (assignment) @context.field))
(function_definition name: (identifier) @_init (#eq? @_init "__init__")
  body: (block (assignment left: (attribute object: (identifier) @_self) (#eq? @_self "self"))
               @context.field))
