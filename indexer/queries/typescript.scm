; Tags for TypeScript (aider repomap conventions + our import / parent / context captures).

(class_declaration name: (type_identifier) @name.definition.class) @definition.class
(abstract_class_declaration name: (type_identifier) @name.definition.class) @definition.class
(interface_declaration name: (type_identifier) @name.definition.interface) @definition.interface
(type_alias_declaration name: (type_identifier) @name.definition.type) @definition.type
(enum_declaration name: (identifier) @name.definition.enum) @definition.enum
(internal_module name: [(identifier) (nested_identifier)] @name.definition.module) @definition.module
(function_declaration name: (identifier) @name.definition.function) @definition.function
(generator_function_declaration name: (identifier) @name.definition.function) @definition.function
(function_signature name: (identifier) @name.definition.function) @definition.function
(method_definition name: (property_identifier) @name.definition.method) @definition.method
(method_signature name: (property_identifier) @name.definition.method) @definition.method
(abstract_method_signature name: (property_identifier) @name.definition.method) @definition.method
(public_field_definition name: (property_identifier) @name.definition.field) @definition.field
(property_signature name: (property_identifier) @name.definition.field) @definition.field
(lexical_declaration (variable_declarator name: (identifier) @name.definition.function
  value: [(arrow_function) (function_expression)]) @definition.function)
(variable_declaration (variable_declarator name: (identifier) @name.definition.function
  value: [(arrow_function) (function_expression)]) @definition.function)

(import_statement (import_clause (named_imports (import_specifier name: (identifier) @import.name
  !alias))) source: (string) @import.module) @import
(import_statement (import_clause (named_imports (import_specifier name: (identifier) @import.name
  alias: (identifier) @import.alias))) source: (string) @import.module) @import
(import_statement (import_clause (identifier) @import.alias) source: (string) @import.module) @import
(import_statement (import_clause (namespace_import (identifier) @import.alias))
  source: (string) @import.module) @import
; Side-effect imports (import "x"); merged away when a more specific pattern matched.
(import_statement source: (string) @import.module) @import
(call_expression function: (identifier) @_require (#eq? @_require "require")
  arguments: (arguments . (string) @import.module)) @import

(class_declaration name: (type_identifier) @parent.child
  (class_heritage (extends_clause value: (_) @parent.name)))
(abstract_class_declaration name: (type_identifier) @parent.child
  (class_heritage (extends_clause value: (_) @parent.name)))
(class_declaration name: (type_identifier) @parent.child
  (class_heritage (implements_clause [(type_identifier) (generic_type) (nested_type_identifier)] @parent.name)))
(abstract_class_declaration name: (type_identifier) @parent.child
  (class_heritage (implements_clause [(type_identifier) (generic_type) (nested_type_identifier)] @parent.name)))
(interface_declaration name: (type_identifier) @parent.child
  (extends_type_clause type: (_) @parent.name))

; == references and context ==

(call_expression function: [(identifier) @name.reference.call
                            (member_expression property: (property_identifier) @name.reference.call)])
(new_expression constructor: [(identifier) @name.reference.class
                              (member_expression property: (property_identifier) @name.reference.class)])
(member_expression property: (property_identifier) @name.reference.attribute)
(type_identifier) @name.reference.type

(identifier) @context.identifier
(property_identifier) @context.identifier
(type_identifier) @context.type
[(string) (template_string)] @context.string
[(public_field_definition) (property_signature)] @context.field
