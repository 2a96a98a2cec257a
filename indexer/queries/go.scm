; Tags for Go (aider repomap conventions + our import / parent / context captures).
; @receiver names the type a method belongs to (methods are not nested in Go).

(function_declaration name: (identifier) @name.definition.function) @definition.function
(method_declaration
  receiver: (parameter_list (parameter_declaration type: [(type_identifier) @receiver
    (pointer_type (type_identifier) @receiver)
    (generic_type type: (type_identifier) @receiver)
    (pointer_type (generic_type type: (type_identifier) @receiver))]))
  name: (field_identifier) @name.definition.method) @definition.method
(type_declaration (type_spec name: (type_identifier) @name.definition.struct type: (struct_type))) @definition.struct
(type_declaration (type_spec name: (type_identifier) @name.definition.interface type: (interface_type))) @definition.interface
(type_declaration (type_spec name: (type_identifier) @name.definition.type
  type: [(type_identifier) (qualified_type) (map_type) (slice_type) (array_type) (function_type)
         (pointer_type) (channel_type) (generic_type)])) @definition.type
(type_declaration (type_alias name: (type_identifier) @name.definition.type)) @definition.type
(field_declaration name: (field_identifier) @name.definition.field) @definition.field
(method_elem name: (field_identifier) @name.definition.method) @definition.method
(source_file (const_declaration (const_spec name: (identifier) @name.definition.constant) @definition.constant))
(source_file (var_declaration (var_spec name: (identifier) @name.definition.variable) @definition.variable))

(import_spec !name path: (interpreted_string_literal) @import.module) @import
(import_spec name: (_) @import.alias path: (interpreted_string_literal) @import.module) @import

; Embedding is Go's inheritance.
(type_spec name: (type_identifier) @parent.child
  type: (struct_type (field_declaration_list (field_declaration !name
    type: [(type_identifier) (qualified_type) (pointer_type) (generic_type)] @parent.name))))
(type_spec name: (type_identifier) @parent.child
  type: (interface_type (type_elem [(type_identifier) (qualified_type)] @parent.name)))

; == references and context ==

(call_expression function: [(identifier) @name.reference.call
                            (selector_expression field: (field_identifier) @name.reference.call)])
(selector_expression field: (field_identifier) @name.reference.attribute)
(composite_literal type: (type_identifier) @name.reference.class)
(type_identifier) @name.reference.type

(identifier) @context.identifier
(field_identifier) @context.identifier
(type_identifier) @context.type
[(interpreted_string_literal) (raw_string_literal)] @context.string
(field_declaration) @context.field
