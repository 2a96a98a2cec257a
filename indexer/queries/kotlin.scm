; Tags for Kotlin (aider repomap conventions + our import / parent / context captures).
; @import.qualified is split at its last dot: import a.b.C -> module "a.b", names ["C"].

(class_declaration "class" (type_identifier) @name.definition.class) @definition.class
(class_declaration "interface" (type_identifier) @name.definition.interface) @definition.interface
(object_declaration (type_identifier) @name.definition.object) @definition.object
(function_declaration (simple_identifier) @name.definition.function) @definition.function
(class_body (property_declaration (variable_declaration (simple_identifier) @name.definition.field)) @definition.field)
(class_parameter (binding_pattern_kind) (simple_identifier) @name.definition.field) @definition.field
(source_file (property_declaration (variable_declaration (simple_identifier) @name.definition.variable)) @definition.variable)
(type_alias (type_identifier) @name.definition.type) @definition.type

(import_header (identifier) @import.qualified) @import
(import_header (identifier) @import.qualified (import_alias (type_identifier) @import.alias)) @import
(import_header (identifier) @import.module (wildcard_import) @import.name) @import

(class_declaration (type_identifier) @parent.child
  (delegation_specifier [(user_type (type_identifier) @parent.name)
                         (constructor_invocation (user_type (type_identifier) @parent.name))]))
(object_declaration (type_identifier) @parent.child
  (delegation_specifier [(user_type (type_identifier) @parent.name)
                         (constructor_invocation (user_type (type_identifier) @parent.name))]))

; == references and context ==

(call_expression (simple_identifier) @name.reference.call)
(call_expression (navigation_expression (navigation_suffix (simple_identifier) @name.reference.call)))
(navigation_suffix (simple_identifier) @name.reference.attribute)
(user_type (type_identifier) @name.reference.type)

(simple_identifier) @context.identifier
(type_identifier) @context.type
(string_literal) @context.string
(class_body (property_declaration) @context.field)
(class_parameter) @context.field
